-- The dataset argument of the by-dataset functions: 'inc' or 'crq', else one clear error.
CREATE OR REPLACE FUNCTION tickets.known_dataset(p_dataset text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_dataset IS DISTINCT FROM 'inc' AND p_dataset IS DISTINCT FROM 'crq' THEN
        RAISE EXCEPTION 'dataset must be inc or crq (got %)', tickets.quoted_argument(p_dataset)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_dataset;
END
$$;
