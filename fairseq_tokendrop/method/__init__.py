"""The method: token selection, the token-dropping encoder, importance, the ScTD loss and the FLOP count."""
