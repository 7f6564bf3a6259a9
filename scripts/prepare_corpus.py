#!/usr/bin/env python
from fairseq_tokendrop.cli.prepare_corpus import main

raise SystemExit(main())
