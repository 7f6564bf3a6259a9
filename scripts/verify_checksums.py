#!/usr/bin/env python
from fairseq_tokendrop.cli.verify_checksums import main

raise SystemExit(main())
