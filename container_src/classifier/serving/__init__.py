"""The serving side: handler (model logic), batching, app (HTTP contract), server (`serve`)."""
