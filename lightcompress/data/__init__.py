"""Data sets shaped for a model: the ``Dataset`` interface (``dataset``), its in-memory kind
(``memory.Prepared``) and its streamed kind (``streams.Streamed``), raw loading and array shaping
(``sets``), the streamed sources' readers (``sources``), and the one door from a spec to a data
set (``open.open_for_model``). Random model inputs for checks without data are in ``synthetic``.
"""

from .dataset import SPLITS, Dataset
from .memory import Prepared
from .open import open_for_model
from .sets import DataSpec, RawSplits, load_dataset, prepare
from .streams import Streamed

__all__ = ["SPLITS", "DataSpec", "Dataset", "Prepared", "RawSplits", "Streamed", "load_dataset", "open_for_model",
           "prepare"]
