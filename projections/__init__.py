"""dockstate.projections."""
