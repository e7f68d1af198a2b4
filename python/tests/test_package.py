"""The layer under test is the pip-installed package, stubs included."""

import channels_groupsvc
from groupsvc.v1 import layer_pb2


def test_the_layer_is_the_installed_package_with_generated_stubs():
    assert "site-packages" in channels_groupsvc.__file__, channels_groupsvc.__file__
    assert "site-packages" in layer_pb2.__file__, layer_pb2.__file__
    assert layer_pb2.DESCRIPTOR.services_by_name["ChannelLayer"].methods_by_name["GetUser"]
