"""dockstate.core."""
