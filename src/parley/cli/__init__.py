"""cli layer; see DESIGN.md §3."""
