module sealtrail.dev/bench/peer

go 1.24
