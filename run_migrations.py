"""python run_migrations.py: the deploy step, kept at this path for Coolify and the docs (fleettickets/schema.py)."""

from fleettickets import schema

if __name__ == "__main__":
    raise SystemExit(schema.main())
