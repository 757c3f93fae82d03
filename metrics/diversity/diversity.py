"""Diversity of a set of generated texts: an `evaluate` wrapper over `synth_datasets.metrics.diversity`."""

import datasets
import evaluate

from synth_datasets.metrics.diversity import diversity


_CITATION = """\
@inproceedings{li-etal-2016-diversity,
    title = "A Diversity-Promoting Objective Function for Neural Conversation Models",
    author = "Li, Jiwei and Galley, Michel and Brockett, Chris and Gao, Jianfeng and Dolan, Bill",
    booktitle = "Proceedings of NAACL-HLT",
    year = "2016",
}
@inproceedings{zhu2018texygen,
    title = "Texygen: A Benchmarking Platform for Text Generation Models",
    author = "Zhu, Yaoming and Lu, Sidi and Zheng, Lei and Guo, Jiaxian and Zhang, Weinan and Wang, Jun and Yu, Yong",
    booktitle = "SIGIR",
    year = "2018",
}
@article{shaib2024standardizing,
    title = "Standardizing the Measurement of Text Diversity: A Tool and a Comparative Analysis of Scores",
    author = "Shaib, Chantal and Barrow, Joe and Sun, Jiuding and Siu, Alexa F. and Wallace, Byron C. and Nenkova, Ani",
    journal = "arXiv preprint arXiv:2403.00553",
    year = "2024",
}
@article{friedman2023vendi,
    title = "The Vendi Score: A Diversity Evaluation Metric for Machine Learning",
    author = "Friedman, Dan and Dieng, Adji Bousso",
    journal = "Transactions on Machine Learning Research",
    year = "2023",
}
"""

_DESCRIPTION = """\
Diversity of a set of texts (no references). Lexical measures: distinct-n and n-gram entropy over
the whole set, self-BLEU (each text against all others; equal to nltk's sentence_bleu with
smoothing method1), gzip compression ratio, vocabulary size, type-token ratio and length statistics.
Semantic measures, when embeddings are given or embed=True: mean pairwise cosine distance and the
Vendi score. Tokens are the lowercased whitespace split of each text; entropies are in nats.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the texts whose diversity is measured.
    embeddings (array of shape (n, d), optional): one embedding per text, in the same order; rows
        are L2-normalized before use.
    ngram_orders (`tuple` of `int`, default (1, 2, 3, 4)): orders of distinct-n and n-gram entropy.
    self_bleu_sample (`int`, optional): score self-BLEU on this many random hypotheses (each still
        against all other texts); None scores every text.
    seed (`int`, default 0): seed of that sample.
    vendi_q (`float`, default 1.0): order of the Vendi score (q >= 0, or float("inf")).
    embed (`bool`, default False): embed the texts with the packaged all-MiniLM-L6-v2 model (CPU).
Returns:
    distinct_<n>, ngram_entropy_<n>: per order in ngram_orders.
    self_bleu: mean BLEU-4 of each text against the others (NaN for a single text); higher = less diverse.
    compression_ratio: UTF-8 size / gzip size of the texts joined by spaces; higher = more repetitive.
    vocabulary_size, type_token_ratio, length_mean, length_std: token statistics (population std).
    embedding_mean_pairwise_distance, vendi_score: only with embeddings or embed=True.
Examples:
    >>> diversity = evaluate.load("metrics/diversity")
    >>> results = diversity.compute(predictions=["the cat sat", "the dog ran"])
    >>> results["distinct_1"]
    0.8333333333333334
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Diversity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=[
                "https://arxiv.org/abs/2403.00553",
                "https://arxiv.org/abs/2210.02410",
            ],
        )

    def _compute(self, predictions, embeddings=None, ngram_orders=(1, 2, 3, 4), self_bleu_sample=None,
                 seed=0, vendi_q=1.0, embed=False):
        return diversity(
            list(predictions),
            embeddings=embeddings,
            ngram_orders=ngram_orders,
            self_bleu_sample=self_bleu_sample,
            seed=seed,
            vendi_q=vendi_q,
            embed=embed,
        )
