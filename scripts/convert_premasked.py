#!/usr/bin/env python
from fairseq_tokendrop.cli.convert_premasked import main

raise SystemExit(main())
