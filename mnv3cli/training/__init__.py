"""Layer 5: fine-tuning and training from scratch: the options (:mod:`.config`), the model a run
starts from (:mod:`.setup`), its data (:mod:`.data`), the loop (:mod:`.loop`) and the files a run
writes (:mod:`.outputs`). Names resolve lazily: the options import no torch."""

from .._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "AMP_MODES": ".config", "AUGMENTS": ".config", "DEFAULT_MODEL": ".config", "OPTIMIZERS": ".config",
    "TrainConfig": ".config", "build_config": ".config", "default_of": ".config",
    "EpochRecord": ".loop", "StepProgress": ".loop", "TrainListener": ".loop", "TrainPlan": ".loop",
    "TrainResult": ".loop", "TrainingDiverged": ".loop", "train": ".loop",
    "stop_on_signals": ".processes",
})
