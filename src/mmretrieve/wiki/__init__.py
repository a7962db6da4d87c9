"""Wikipedia ingestion: fetch articles and their images (with captions and licences) from the
MediaWiki API (:mod:`.api`, :mod:`.refs`) or a database dump (:mod:`.dump`), and write them in the
folder-per-article layout that :mod:`mmretrieve.sources.folder` reads (:mod:`.output`).

Usage and options: docs/WIKI.md. The submodules are imported on demand, so importing this package
loads nothing heavy.
"""
