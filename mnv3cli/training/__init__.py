"""Layer 5: fine-tuning and training from scratch: the options (:mod:`.config`), the model a run
starts from (:mod:`.setup`), its data (:mod:`.data`), its recipe (:mod:`.recipe`), what is fixed
once it starts (:mod:`.run`) and where it stands (:mod:`.state`), the loop (:mod:`.loop`), what it
reports (:mod:`.events`), stop requests (:mod:`.signals`), the files a run writes
(:mod:`.outputs`), the lock that gives a run folder to one live run (:mod:`.lock`) and the temperature fitted
at its end (:mod:`.calibrate`). Names resolve lazily: the options and the events import no torch."""

from .._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "AMP_MODES": ".config",
        "AUGMENTS": ".config",
        "CLASS_WEIGHTS": ".config",
        "SAMPLERS": ".config",
        "DEFAULT_MODEL": ".config",
        "OPTIMIZERS": ".config",
        "LOSSES": ".config",
        "TrainConfig": ".config",
        "build_config": ".config",
        "default_of": ".config",
        "EpochRecord": ".events",
        "StepProgress": ".events",
        "TrainListener": ".events",
        "TrainPlan": ".events",
        "TrainResult": ".events",
        "TrainSummary": ".events",
        "TrainingDiverged": ".loop",
        "train": ".loop",
        "stop_on_signals": ".signals",
        "calibrate_loaded": ".calibrate",
        "calibrate_weights": ".calibrate",
    },
)
