"""The shared vocabulary: special tokens and the two phrase rules."""
import subprocess
import sys

from geopixel.structures import (GEOPIXEL_TOKENS, SEG_TOKEN, count_seg,
                                 glamm_caption, glamm_phrases,
                                 grounded_phrases)


def test_tokens_in_the_order_the_vocabulary_grows():
    assert GEOPIXEL_TOKENS == ('[SEG]', '<p>', '</p>')
    assert SEG_TOKEN == '[SEG]'


def test_the_two_phrase_rules_agree_on_well_formed_answers():
    text = 'The <p> tennis court-1 </p> [SEG] at right, <p>x</p>[SEG].'
    assert grounded_phrases(text) == glamm_phrases(text) == [
        'tennis court-1', 'x']
    assert count_seg(text) == 2


def test_a_phrase_without_seg_shifts_glamms_pairing_only():
    text = ('<p> dangling </p> then <p> ship-1 </p> [SEG] and <p>\n car'
            '</p> [SEG]')
    # the model's rule labels mask k with the phrase before the k-th [SEG]
    assert grounded_phrases(text) == ['ship-1', 'car']
    # GLaMM pairs phrase i with mask i: the dangling phrase takes mask 0
    assert glamm_phrases(text) == ['dangling', 'ship-1', 'car']


def test_glamm_caption():
    assert glamm_caption("'The <p> a </p> [SEG]\n  is   <b>here</b>.'") == \
        'The a is here.'


def test_vocabulary_needs_no_mmengine():
    code = ('import sys; import geopixel.structures.vocabulary; '
            'print("mmengine" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == 'False'
