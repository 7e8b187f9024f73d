"""Import paths of modules that have moved, kept working with a ``DeprecationWarning``.

The code was reorganised by purpose (``extract/sources``, ``extract/decode``,
``extract/models``, ``sequence/train``, ``sequence/infer``, ...). A program that
still imports a module by its former path, for example
``from vidseq.extract.frames import read_frames``, gets the module at its new
path and one warning that names it. The package root installs the finder.
"""

import importlib
import importlib.abc
import importlib.util
import warnings

MOVED = {
    "vidseq.extract.items": "vidseq.extract.sources.items",
    "vidseq.extract.clips": "vidseq.extract.sources.clips",
    "vidseq.extract.csv_table": "vidseq.extract.sources.csv_table",
    "vidseq.extract.dataset": "vidseq.extract.sources.dataset",
    "vidseq.extract.splits": "vidseq.extract.sources.group_split",
    "vidseq.extract.sample_data": "vidseq.extract.sources.sample_data",
    "vidseq.extract.source_ucf101": "vidseq.extract.sources.ucf101",
    "vidseq.extract.source_fer2013": "vidseq.extract.sources.fer2013",
    "vidseq.extract.source_manifest": "vidseq.extract.sources.manifest",
    "vidseq.extract.source_folder": "vidseq.extract.sources.folder",
    "vidseq.extract.video_reader": "vidseq.extract.decode.video_reader",
    "vidseq.extract.packet_index": "vidseq.extract.decode.packet_index",
    "vidseq.extract.decode_plan": "vidseq.extract.decode.decode_plan",
    "vidseq.extract.frame_stream": "vidseq.extract.decode.frame_stream",
    "vidseq.extract.frames": "vidseq.extract.decode.frames",
    "vidseq.extract.signal_scan": "vidseq.extract.decode.signal_scan",
    "vidseq.extract.shots": "vidseq.extract.decode.shots",
    "vidseq.extract.motion": "vidseq.extract.decode.motion",
    "vidseq.extract.sampling": "vidseq.extract.decode.sampling",
    "vidseq.extract.framespec": "vidseq.extract.decode.framespec",
    "vidseq.extract.faces": "vidseq.extract.decode.faces",
    "vidseq.extract.backbones": "vidseq.extract.models.backbones",
    "vidseq.extract.engines": "vidseq.extract.models.engines",
    "vidseq.extract.preprocessing": "vidseq.extract.models.preprocessing",
    "vidseq.sequence.data": "vidseq.sequence.data.batches",
    "vidseq.sequence.frames_data": "vidseq.sequence.data.frame_clips",
    "vidseq.sequence.temporal": "vidseq.sequence.data.temporal",
    "vidseq.sequence.splits": "vidseq.sequence.data.split_indices",
    "vidseq.sequence.run_dir": "vidseq.sequence.runs.run_dir",
    "vidseq.sequence.saved_run": "vidseq.sequence.runs.saved_run",
    "vidseq.sequence.reports": "vidseq.sequence.runs.report_files",
    "vidseq.sequence.results": "vidseq.sequence.runs.results",
    "vidseq.sequence.plots": "vidseq.sequence.runs.plots",
    "vidseq.sequence.evaluation": "vidseq.sequence.runs.evaluation",
    "vidseq.sequence.loop": "vidseq.sequence.train.loop",
    "vidseq.sequence.checkpoint": "vidseq.sequence.train.checkpoint",
    "vidseq.sequence.distribute": "vidseq.sequence.train.distribute",
    "vidseq.sequence.training": "vidseq.sequence.train.training",
    "vidseq.sequence.end_to_end": "vidseq.sequence.train.end_to_end",
    "vidseq.sequence.finetune": "vidseq.sequence.train.finetune",
    "vidseq.sequence.scratch": "vidseq.sequence.train.scratch",
    "vidseq.sequence.head": "vidseq.sequence.train.model",
    "vidseq.sequence.normalization": "vidseq.sequence.train.normalization",
    "vidseq.sequence.classifier": "vidseq.sequence.infer.run_classifier",
    "vidseq.sequence.predict": "vidseq.sequence.infer.predict",
    "vidseq.sequence.windowed": "vidseq.sequence.infer.windowed",
    "vidseq.sequence.windows": "vidseq.sequence.infer.window_plan",
    "vidseq.sequence.watch": "vidseq.sequence.infer.watch",
    "vidseq.sequence.timeline": "vidseq.sequence.infer.timeline",
    "vidseq.sequence.export": "vidseq.sequence.export.build",
    "vidseq.sequence.export_manifest": "vidseq.sequence.export.manifest",
    "vidseq.sequence.export_runtime": "vidseq.sequence.export.runtime",
    "vidseq.sequence.compare": "vidseq.sequence.studies.compare",
    "vidseq.sequence.demo": "vidseq.sequence.studies.demo",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves each former module path of ``moved`` to the module at its new path."""

    def __init__(self, moved):
        self.moved = dict(moved)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.moved:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = self.moved[spec.name]
        warnings.warn(
            f"{spec.name} has moved to {new}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module):
        """Nothing to run: the module at the new path is already executed."""
