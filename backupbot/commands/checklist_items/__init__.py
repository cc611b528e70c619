"""The five items of the monthly checklist, one module each, over `model`'s facts."""
