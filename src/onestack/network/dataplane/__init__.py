"""The network data plane: what makes a host carry the packets the API describes.

``model`` is the desired state a driver is given; ``base.make_driver`` picks a driver
(``linux``: the kernel, ``fake``/off: nothing). The Linux driver's pieces:
``netns`` (namespaces, links, addresses, routes), ``nft`` (security groups and NAT),
``dnsmasq`` (DHCP), ``metadata`` (169.254.169.254 in DHCP namespaces), ``wiring``
(one converge pass over the kernel) and ``linux`` (the driver; the kernel layout is
drawn in its docstring).
"""

from onestack.network.dataplane.base import Driver, MetadataHandler, make_driver, probe_linux
from onestack.network.dataplane.model import ConvergeResult, DesiredState

__all__ = [
    "ConvergeResult",
    "DesiredState",
    "Driver",
    "MetadataHandler",
    "make_driver",
    "probe_linux",
]
