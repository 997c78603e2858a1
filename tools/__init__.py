"""dockstate.tools."""
