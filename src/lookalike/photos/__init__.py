"""Photos from the wild: synthetic phone photos of catalogue items, query-photo sets, and item localisation."""

from .localise import ActivationLocaliser, Detection, box_iou
from .sets import QueryPhoto, make_query_photos, read_query_photos, write_query_photos
from .synthesis import Photo, PhotoStyle, item_mask, jitter_box, make_photo

__all__ = ["ActivationLocaliser", "Detection", "Photo", "PhotoStyle", "QueryPhoto", "box_iou", "item_mask",
           "jitter_box", "make_photo", "make_query_photos", "read_query_photos", "write_query_photos"]
