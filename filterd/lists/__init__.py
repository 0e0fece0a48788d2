"""Category lists: source parsers, the compiled on-disk index, the updater.

Imports nothing of the network server, web or database layers.
"""
