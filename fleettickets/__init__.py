"""fleettickets: drains the ITSM's ticket change files from S3 into PostgreSQL + PostGIS for the FleetOps map.

`pipeline` is the engine's front door; `inc/` and `crq/` at the repository
root each hand it a `Dataset`. `schema` brings a database to this tree's
migrations. The stages and the modules that hold them are drawn in the README.
"""
