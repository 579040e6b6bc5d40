"""An example ssnas search-space plugin: `toy`, a 3-layer CNN (`toy_space_plugin.space`)."""
