"""Stand-ins for peers' compiled extensions; the folder goes on a peer venv's path as it is, so
each subfolder is importable there under the extension's own name (e.g. `torch_scatter`)."""
