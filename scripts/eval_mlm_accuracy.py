#!/usr/bin/env python
from fairseq_tokendrop.cli.eval_mlm_accuracy import main

raise SystemExit(main())
