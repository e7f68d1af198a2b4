"""channels_groupsvc: groupsvc as the channel layer of a Django Channels project.

    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_groupsvc.GroupsvcChannelLayer",
                                  "CONFIG": {"target": "127.0.0.1:50051"}}}
"""

from .core import GroupsvcChannelLayer
from .errors import GroupsvcRefused, GroupsvcUnavailable, NotDeliveredToEveryone

__all__ = ["GroupsvcChannelLayer", "GroupsvcRefused", "GroupsvcUnavailable", "NotDeliveredToEveryone"]
