#!/usr/bin/env python
from fairseq_tokendrop.commands.prepare_corpus import main

raise SystemExit(main())
