from configparser import ConfigParser
import setuptools

# note: the nbdev template's `pkg_resources` version check is dropped (it fails with current setuptools)
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {'apache2': 'Apache-2.0'}  # settings.ini's name -> SPDX expression (PEP 639; licence classifiers are deprecated)
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.11 3.12 3.13'.split()  # where its tests passed: 3.11 here and in CI, 3.12 on the GPU machine, 3.13 here (`make test PYTHON=python3.13`)

requirements = cfg.get('requirements', '').split()
min_python = cfg['min_python']
dev_requirements = cfg.get('dev_requirements', '').split()
gpu_requirements = cfg.get('gpu_requirements', '').split()

setuptools.setup(
    name=cfg['lib_name'],
    license_expression=licenses.get(cfg['license'].lower(), cfg['license']),
    classifiers=[
        'Development Status :: ' + statuses[int(cfg['status']) - 1],  # settings.ini's status is the classifier's number
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['wsss_nb', 'wsss_nb.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'gpu': gpu_requirements},
    dependency_links=cfg.get('dep_links', '').split(),
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d'],
    },
    **setup_cfg)
