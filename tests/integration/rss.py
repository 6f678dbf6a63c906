"""The Toeplitz hash a NIC computes for RSS, with the key and redirection table stakegate
gives both ports (src/app/port_plan.cc), so a test can split a capture into per-queue
files exactly as such a NIC would steer it."""
import ipaddress

# The Microsoft RSS verification key: rss_key() in src/app/port_plan.cc.
KEY = bytes([0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
             0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
             0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa])
RETA_SIZE = 128


def toeplitz(data, key=KEY):
    k = int.from_bytes(key, "big")
    width = len(key) * 8
    h = 0
    for i, byte in enumerate(data):
        for b in range(8):
            if byte & (0x80 >> b):
                h ^= (k >> (width - 32 - (i * 8 + b))) & 0xFFFFFFFF
    return h


def queue_of(address, queues, prefix64=False):
    """The RX queue of a packet hashed on this one address (L3_SRC_ONLY outside,
    L3_DST_ONLY inside): redirection table entry i is queue i % queues. `prefix64`: an
    IPv6 address hashed on its first 64 bits (L3_PRE64)."""
    packed = ipaddress.ip_address(address).packed
    h = toeplitz(packed[:8] if prefix64 and len(packed) == 16 else packed)
    return (h % RETA_SIZE) % queues


# Microsoft's published verification vector (IPv4, source and destination address, no
# ports): checks the hash above before a test relies on it.
assert toeplitz(ipaddress.ip_address("66.9.149.187").packed + ipaddress.ip_address("161.142.100.80").packed) == 0x323E8FC2
