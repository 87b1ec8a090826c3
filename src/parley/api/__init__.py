"""api layer; see DESIGN.md §3."""
