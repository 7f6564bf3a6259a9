#!/usr/bin/env python
from fairseq_tokendrop.cli.export_checkpoint import main

raise SystemExit(main())
