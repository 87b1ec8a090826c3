"""web layer; see DESIGN.md §3."""
