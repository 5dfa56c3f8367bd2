printf aisp | sha256sum; seq 1 1000 | md5sum
