"""The command layer: `lwl-search` (`lwl_search`, its flags and presets in `flags`, its local worker processes in
`workers`), `lwl-export` (`lwl_export`), and what they show (`display`).

`import lwl.search` loads only `display` from here (the answer's words, `answer_lines`, are public); the commands and
their flags load when a command runs (`lwl.search.commands`, `python -m lwl.search`)."""
