"""Data: sources, manifests, labeled subsets, transcoding, shards and storage (the prepare side of the data flow)."""
