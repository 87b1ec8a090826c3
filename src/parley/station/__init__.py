"""station layer; see DESIGN.md §3."""
