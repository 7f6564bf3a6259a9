#!/usr/bin/env python
from fairseq_tokendrop.cli.demo_report import main

raise SystemExit(main())
