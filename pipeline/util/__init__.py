"""Small helpers every part of the pipeline uses: atomic writes, the console, figures, the version."""
