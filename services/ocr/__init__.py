"""The ocr service: the document splitter and a pool of page-worker processes."""
