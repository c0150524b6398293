-- What an error quotes of an argument a caller sent: at most 40 characters between single quotes, control and
-- bidi characters written as \xNN or \uNNNN (a backslash as \\, a quote doubled), and the full length when it
-- was longer. A 1 MB argument made a 1 MB error before (and 2 MB of server log per two calls); a newline or an
-- escape sequence could forge a line in a log. Its backslashes are written in E'' literals, which read the same
-- whatever standard_conforming_strings the calling session has (a body is parsed in the caller's session).
CREATE OR REPLACE FUNCTION tickets.quoted_argument(p_value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p_value IS NULL THEN 'NULL' ELSE
        '''' || COALESCE((
            SELECT string_agg(CASE WHEN c = E'\\' THEN E'\\\\'
                                   WHEN c = '''' THEN ''''''
                                   WHEN c ~ E'[\\u0001-\\u001f\\u007f-\\u009f\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069]'
                                   THEN CASE WHEN ascii(c) < 256 THEN E'\\x' || lpad(to_hex(ascii(c)), 2, '0')
                                             ELSE E'\\u' || lpad(to_hex(ascii(c)), 4, '0') END
                                   ELSE c END, '' ORDER BY i)
            FROM unnest(string_to_array(left(p_value, 40), NULL)) WITH ORDINALITY AS t(c, i)), '') || ''''
        || CASE WHEN length(p_value) > 40 THEN format(' … (%s characters)', length(p_value)) ELSE '' END
    END
$$;
