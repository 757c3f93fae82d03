"""Downstream (indirect) evaluation: an `evaluate` wrapper over `synth_datasets.metrics.downstream.tstr`."""

import datasets
import evaluate

from synth_datasets.metrics.downstream import tstr


_CITATION = """\
@inproceedings{esteban2017real,
    title = "Real-valued (Medical) Time Series Generation with Recurrent Conditional GANs",
    author = "Esteban, Crist{\\'o}bal and Hyland, Stephanie L. and R{\\"a}tsch, Gunnar",
    journal = "arXiv preprint arXiv:1706.02633",
    year = "2017",
}
@inproceedings{long2024llms,
    title = "On LLMs-Driven Synthetic Data Generation, Curation, and Evaluation: A Survey",
    author = "Long, Lin and Wang, Rui and Xiao, Ruixuan and Zhao, Junbo and Ding, Xiao and Chen, Gang and Wang, Haobo",
    booktitle = "Findings of ACL",
    year = "2024",
}
"""

_DESCRIPTION = """\
Indirect evaluation of a synthetic labelled set (survey section 3.3.2): train a small classifier on
it and test on a real labelled set (TSTR: train on synthetic, test on real). With a real training
set, the same classifier trained on it (TRTR) and the ratios TSTR / TRTR. Texts are embedded with the
packaged all-MiniLM-L6-v2 (offline, CPU); the classifier is a logistic regression by default.
"""

_KWARGS_DESCRIPTION = """
Args:
    labels (`list` of `str` or `int`): labels of the synthetic training set.
    texts (`list` of `str`) or embeddings (array (n, d)): the synthetic training rows (exactly one).
    test_labels (`list`): labels of the real test set.
    test_texts or test_embeddings: the real test rows (exactly one).
    real_train_labels (`list`, optional) with real_train_texts or real_train_embeddings: a real
        training set for the TRTR baseline.
    classifier (`str` or scikit-learn classifier, default "logreg"): "logreg", "knn" or an estimator
        (cloned before fitting).
    seed (`int`, default 0): the classifier's random_state.
    cache (`bool`, default True): embed texts through the content-hash cache (memory and disk), so a
        real test set used again is not embedded again.
Returns:
    tstr_accuracy, tstr_macro_f1, n_train, n_test, unseen_test_labels; with a real training set also
    trtr_accuracy, trtr_macro_f1, n_real_train, accuracy_ratio, macro_f1_ratio.
Examples:
    >>> downstream = evaluate.load("metrics/downstream")
    >>> x = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]
    >>> downstream.compute(labels=["a", "a", "b", "b"], embeddings=x, test_labels=["a", "b"],
    ...                    test_embeddings=[[1.0, 0.2], [0.2, 1.0]])["tstr_accuracy"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Downstream(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[datasets.Features({"labels": datasets.Value("string")}),
                      datasets.Features({"labels": datasets.Value("int64")})],
            reference_urls=["https://arxiv.org/abs/2406.15126"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute TSTR (keyword arguments only; see the Args below)."""
        if predictions is not None or references is not None:
            raise ValueError("metrics/downstream takes no predictions=/references=: pass the synthetic set as "
                             "labels= with texts= or embeddings=, and the real test set as test_labels= with "
                             "test_texts= or test_embeddings=")
        return super().compute(**kwargs)

    def _compute(self, labels, texts=None, embeddings=None, test_labels=None, test_texts=None,
                 test_embeddings=None, real_train_labels=None, real_train_texts=None,
                 real_train_embeddings=None, classifier="logreg", seed=0, cache=True):
        return tstr(train_labels=list(labels), train_texts=texts, train_embeddings=embeddings,
                    test_labels=test_labels, test_texts=test_texts, test_embeddings=test_embeddings,
                    real_train_labels=real_train_labels, real_train_texts=real_train_texts,
                    real_train_embeddings=real_train_embeddings, classifier=classifier, seed=seed, cache=cache)
