"""Data sources: where the videos of a dataset are and which labels and splits they carry.

One module per source (``ucf101``, ``fer2013``, ``manifest``, ``folder``), each
with ``NAME``, ``detect(path)`` and ``load(path, **options)``; :mod:`.dataset`
holds their registry and ``load_dataset``; :mod:`.items` the item model they all
build; :mod:`.clips` the loaders that turn an image clip's entries into images;
:mod:`.fer2013_csv` the parsed FER-2013 CSV table; :mod:`.group_split`
group-aware train/val/test splitting; :mod:`.sample_data` the offline sample
videos. May import :mod:`vidseq.errors` and the package
root's version module only: nothing here decodes a frame or runs a network.
"""
