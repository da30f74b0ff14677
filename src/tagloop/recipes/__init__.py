"""Model recipes: how text becomes a trained model and scores. Pure computation (numpy,
scipy, scikit-learn), no storage or network; every recipe follows ``base.TextModel`` and is
registered in ``registry.RECIPES``."""
