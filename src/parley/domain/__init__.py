"""domain layer; see DESIGN.md §3."""
