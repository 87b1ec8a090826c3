"""transport layer; see DESIGN.md §3."""
