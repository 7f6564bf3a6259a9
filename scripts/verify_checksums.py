#!/usr/bin/env python
from fairseq_tokendrop.commands.verify_checksums import main

raise SystemExit(main())
