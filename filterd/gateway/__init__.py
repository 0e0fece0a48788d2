"""On the gateway: nftables rules, the bypass monitor, the neighbour table, doctor."""
