"""FC2 data: strict readers (io), folder scan and check, synthetic generator, HDF5 shards and the loader.

Submodules are imported explicitly (``from edgeflownas.data.io import read_flo``) so
importing the package stays cheap and never pulls in OpenCV or h5py.
"""
