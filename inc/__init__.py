"""Incidents (INC): the fibre faults field teams fix."""
