#!/usr/bin/env python
from fairseq_tokendrop.commands.export_checkpoint import main

raise SystemExit(main())
