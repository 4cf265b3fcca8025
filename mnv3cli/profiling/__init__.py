"""Layer 5: what a model costs: parameters and MACs (:mod:`.counting`), latency and memory per
backend (:mod:`.timing`), both in one record (:mod:`.profile`). Names resolve lazily."""

from .._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ModelProfile": ".profile",
        "ProfileResult": ".profile",
        "profile_model": ".profile",
        "CONVENTION": ".counting",
        "ComputeCount": ".counting",
        "ParamCount": ".counting",
        "count_compute": ".counting",
        "count_parameters": ".counting",
        "LatencyStats": ".timing",
        "backend_availability": ".timing",
        "measure_latency": ".timing",
    },
)
