"The longest tests first: under pytest-xdist the workers then end on short ones, together, not one waiting for another's long notebook."

LONGEST_FIRST = ('tests/test_notebooks.py', 'tests/test_browser.py')  # a notebook or JupyterLab takes up to 2.5 minutes; the others under one

def pytest_collection_modifyitems(config, items):
    first = lambda item: next((i for i, f in enumerate(LONGEST_FIRST) if item.nodeid.startswith(f)), len(LONGEST_FIRST))
    items.sort(key=first)  # (stable: each file's own order kept)
