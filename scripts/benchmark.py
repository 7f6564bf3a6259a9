#!/usr/bin/env python
from fairseq_tokendrop.cli.benchmark import main

raise SystemExit(main())
