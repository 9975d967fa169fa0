"""declipper: restore clipped audio with a network trained to invert clipping."""
__version__ = "0.1.0"  # first, so that the modules below can record it

from .api import Detection, detect, load_model, restore
from .detection import DetectionSettings
from .engine import EngineSettings
from .physics import ClippingLevels
from .sparse import ASpadeSettings

__all__ = ["ASpadeSettings", "ClippingLevels", "Detection", "DetectionSettings", "EngineSettings", "detect",
           "load_model", "restore", "__version__"]
